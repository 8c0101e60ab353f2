"""tinymalloc slab tuning (issue 7): read allocation profiles, recommend slab classes and
preallocated counts, verify the recommendation by measurement.

  profile.py   the profile format (tinymalloc-profile-1): read, check, merge
  classes.py   the allocator's class arithmetic, the exact optimiser, fragmentation figures
  verify.py    profile a registered workload, measure default vs tuned, write the report
  cli.py       `scripts/tune-slabs`

Python 3 standard library only.
"""
