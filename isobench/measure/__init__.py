"""The measurement core: how one commit's generated test is timed at base, head and main.

Split by the process each part runs in (the measure job, the sandbox around every run of a test, the
workers run by each revision's own Python); docs/architecture.md is the map of its modules.

The modules are imported by name (``from isobench.measure.rounds import measure_commit``): importing this
package alone loads nothing more.
"""
