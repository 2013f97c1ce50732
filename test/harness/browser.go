package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is one headless Chromium for a test binary: started once (in a
// TestMain) and shared, each test in a tab of its own (Tab).
type Browser struct {
	ctx     context.Context // the browser's chromedp context
	cancel  func()
	dataDir string
	// OutputDir receives the screenshots of failed tests.
	OutputDir string
}

// StartBrowser starts headless Chromium (Chromium installs it when it is
// missing) with ChromiumFlags and a new, empty profile directory. Close
// stops it and removes the profile.
func StartBrowser() (*Browser, error) {
	exe, err := Chromium()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "permatrix-chromium-profile")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(1400, 1000),
	)
	for _, f := range ChromiumFlags {
		opts = append(opts, chromedp.Flag(f[len("--"):], true))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	b := &Browser{ctx: ctx, dataDir: dataDir, OutputDir: TestOutputDir("browser")}
	b.cancel = func() {
		cancelCtx()
		cancelAlloc()
	}
	// The first action starts the browser, bound to ctx (no deadline: the
	// browser lives until Close); a start that hangs is given up on.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(time.Minute):
		err = fmt.Errorf("no answer in a minute")
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("starting %s: %w", exe, err)
	}
	return b, nil
}

// PID is the browser's main process (0 if it is not running). Chromium's
// other processes (zygote, renderers, GPU, network) are its children.
func (b *Browser) PID() int {
	if c := chromedp.FromContext(b.ctx); c != nil && c.Browser != nil {
		if p := c.Browser.Process(); p != nil {
			return p.Pid
		}
	}
	return 0
}

// ProfileDir is the browser's profile (user data) directory: every one of
// its processes is started with it on its command line.
func (b *Browser) ProfileDir() string { return b.dataDir }

// Close stops the browser and removes its profile directory, and the
// directory of its singleton socket, which Chromium makes in TMPDIR
// (org.chromium.Chromium.*, named by the profile's SingletonSocket link)
// and leaves behind. (Not made in the profile by setting Chromium's
// TMPDIR: the socket's path would pass the 108 bytes a unix socket's may
// have under a long TMPDIR.)
func (b *Browser) Close() {
	b.cancel()
	if target, err := os.Readlink(filepath.Join(b.dataDir, "SingletonSocket")); err == nil {
		if dir := filepath.Dir(target); strings.HasPrefix(filepath.Base(dir), "org.chromium.Chromium.") {
			_ = os.RemoveAll(dir)
		}
	}
	_ = os.RemoveAll(b.dataDir)
}

// Tab opens a new tab for t, closed when t ends; every action in it is
// bounded by timeout. If t has failed by then, a screenshot of the tab is
// written to the output directory first, and the log says where.
func (b *Browser) Tab(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	tab, cancelTab := chromedp.NewContext(b.ctx)
	ctx, cancel := context.WithTimeout(tab, timeout)
	t.Cleanup(func() {
		cancel()
		cancelTab()
	})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// The test's own deadline may have passed: the screenshot gets its own.
		sctx, scancel := context.WithTimeout(tab, 15*time.Second)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("no screenshot of the failed page: %v", err)
			return
		}
		file := filepath.Join(b.OutputDir, fileName(t.Name())+".png")
		if err := os.MkdirAll(b.OutputDir, 0o755); err == nil {
			err = os.WriteFile(file, png, 0o644)
		}
		if err != nil {
			t.Logf("no screenshot of the failed page: %v", err)
			return
		}
		t.Logf("screenshot of the failed page: %s", file)
	})
	return ctx
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileName(testName string) string { return unsafeName.ReplaceAllString(testName, "_") }

// TestOutputDir is where tests leave files for people to look at
// (screenshots of failures): $PERMATRIX_TEST_OUTPUT/<kind> if set, else
// <temp dir>/permatrix-test-output/<kind>.
func TestOutputDir(kind string) string {
	root := os.Getenv("PERMATRIX_TEST_OUTPUT")
	if root == "" {
		root = filepath.Join(os.TempDir(), "permatrix-test-output")
	}
	return filepath.Join(root, kind)
}
