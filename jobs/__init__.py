"""Stage wiring: maps DIS stages (from dis_core) onto executors. Nothing here computes."""
