"""Make ``fleet_training`` (in training/) importable when pytest runs from the repo root."""

import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1]
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))
