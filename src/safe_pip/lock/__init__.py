"""The verify face (target room; today's code is still in :mod:`safe_pip.lockverify`)."""
