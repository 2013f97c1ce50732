# Sourced by ab.sh, abhttp.sh and abimport.sh: the two commits of a
# side-by-side run, checked out in temporary worktrees that are removed
# (with everything else under $work) when the script exits.
#
#   sides BASE NEW 'go build -o "$work/$side.bin" ./cmd/permatrix'
#
# sets $repo and $work (a new temporary directory), checks BASE out in
# $work/base and NEW in $work/new, and runs the command (a string: $side and
# $work are expanded in it) in each, telling which commit each side is.
sides() {
  local base=$1 new=$2 build=$3 rev
  repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
  work=$(mktemp -d)
  trap 'git -C "$repo" worktree remove --force "$work/base" 2>/dev/null; git -C "$repo" worktree remove --force "$work/new" 2>/dev/null; rm -rf "$work"' EXIT
  for side in base new; do
    rev=$base
    [ "$side" = new ] && rev=$new
    git -C "$repo" worktree add --quiet --detach "$work/$side" "$rev"
    (cd "$work/$side" && eval "$build")
    echo "$side: $(git -C "$repo" rev-parse --short "$rev")" >&2
  done
}
