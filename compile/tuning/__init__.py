"""MetaSchedule tuning: the driver (`driver.tune`), its database, plan, seeding, tasks, rerank, MetaSchedule builder/search, log choice."""
