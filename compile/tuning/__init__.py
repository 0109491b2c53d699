"""MetaSchedule tuning: `driver.tune`, its database, history, report, plan, seeding, tasks, rerank, builder/search, log choice."""
