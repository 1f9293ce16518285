"""npustream: live speech captioning with Whisper; encoder on the AMD Ryzen AI (Phoenix) NPU.

Data flow: audio -> windows -> features -> encoder engine -> decoder -> commit policy -> publisher.
"""

import os as _os

# Nothing downloads at run time: libraries that could reach a model hub are told not to.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
