"""tvmdeploy tools: the command line (`cli/`), host services for devices (`devices/`), and, not shipped, development scripts (`dev/`)."""
