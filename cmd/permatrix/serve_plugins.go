package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// plugins are serve's uses of OPA's management APIs: the plugin manager
// and the decision log.
type plugins struct {
	mgr  *management.Manager
	dlog *decisionlog.Logger
	log  *slog.Logger
}

// startPlugins starts what the options ask for: nothing without a decision
// log.
func startPlugins(ctx context.Context, o serveOptions, engine *opa.Engine, log *slog.Logger) (*plugins, error) {
	p := &plugins{log: log}
	if o.decisionLog == "" {
		if len(o.decisionLogMask) > 0 {
			return nil, fmt.Errorf("--decision-log-mask needs a decision log (--decision-log)")
		}
		return p, nil
	}
	mgr, err := management.New(ctx, nil, log)
	if err != nil {
		return nil, err
	}
	p.mgr = mgr
	p.dlog, err = decisionlog.New(ctx, decisionlog.Options{File: o.decisionLog, Mask: o.decisionLogMask, Manager: mgr, Logger: log})
	if err != nil {
		mgr.Stop(ctx)
		return nil, fmt.Errorf("--decision-log: %w", err)
	}
	p.dlog.Attach(engine)
	if err := mgr.Start(ctx); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	return p, nil
}

// decisionLogger is the service's decision logger (a nil interface when
// none).
func (p *plugins) decisionLogger() pdp.DecisionLogger {
	if p.dlog == nil {
		return nil
	}
	return p.dlog
}

// stop uploads what the decision log holds (within timeout), closes its
// file and stops the manager.
func (p *plugins) stop(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if p.dlog != nil {
		if err := p.dlog.Close(ctx); err != nil {
			p.log.Error("closing the decision log", "err", err)
		}
	}
	if p.mgr != nil {
		p.mgr.Stop(ctx)
	}
}
