"""tvmdeploy tools: the command line and scripts."""
