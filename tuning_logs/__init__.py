"""Shipped MetaSchedule tuning databases, one folder per profile and model key."""
