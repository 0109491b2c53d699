"""tvmdeploy targets: target profiles as validated plain data."""

from tvmdeploy.targets.profile import (
    CrossCompiler,
    TargetProfile,
    all_profiles,
    load_profile,
    profile_from_dict,
    profile_names,
)

__all__ = [
    "CrossCompiler",
    "TargetProfile",
    "all_profiles",
    "load_profile",
    "profile_from_dict",
    "profile_names",
]
