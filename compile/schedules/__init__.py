"""Default (untuned) schedules: our CPU rules and TVM's dlight GPU rules, for kernels no tuning log covers."""
