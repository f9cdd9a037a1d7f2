"""The device test stage: boot what was built and check it before it goes anywhere.

qemu: boot an emulated board, log in on the serial console, run smoke checks.
checks: which checks a product gets (data in checks.yml).
report: the JSON report and JUnit XML of one run.
lava: LAVA job definitions for boards in a lab, submission and following.
"""
