"""What the benchmark scripts' summaries share (scripts/bench.sh, scripts/bench-cluster.sh):
reading a run's JSON report and formatting its numbers."""
import json
import os


def loader(out):
    """A function that returns the last JSON line of OUT/<name><ext> (None if missing or
    broken)."""

    def load(name, ext=".json"):
        try:
            with open(os.path.join(out, name + ext)) as f:
                return json.loads(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            return None

    return load


def g(d, *path):
    """d[path[0]][path[1]]..., or None where a step is missing."""
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d


def num(v, fmt="{:,.0f}"):
    """v formatted, or n/a."""
    return "n/a" if v is None else fmt.format(v)
