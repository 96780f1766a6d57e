"""Start a vault process with the harness's patches: ``python launch.py --flags DIR -- vault serve ...``.

See :mod:`patches` (next to this file) for what each flag changes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from patches import main

if __name__ == "__main__":
    main(sys.argv[1:])
