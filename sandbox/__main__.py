"""`python -m sandbox`: run every emulator and the mail catcher until Ctrl-C."""

import sys

from sandbox.runner import main

if __name__ == "__main__":
    sys.exit(main())
