"""npustream: live speech captioning with Whisper; encoder on the AMD Ryzen AI (Phoenix) NPU.

Data flow: audio -> windows -> features -> encoder engine -> decoder -> commit policy -> publisher.
"""

__version__ = "0.1.0"
