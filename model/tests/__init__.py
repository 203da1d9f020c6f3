"""ResMem-Net model tests. Run: /usr/bin/python3 -m unittest discover -s model/tests -t model"""

import os
import sys

# Make the model/ modules importable however the suite is started (discover -t model does this
# already; running a single file with another top-level dir does not).
MODEL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if MODEL_DIR not in sys.path:
    sys.path.insert(0, MODEL_DIR)
