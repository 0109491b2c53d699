"""The `tvmdeploy` command line: `main.py` dispatches to one module per verb (`add_arguments`, `run`)."""
