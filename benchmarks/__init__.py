"""semcache benchmarks: semcache beside what a user would otherwise use, in the same run.

Run ``python benchmarks/run.py [--quick] [--only KINDS] [--out DIR]``; see ``run.py``.
"""
