"""`lrm4d view`: 4D Gaussians in the browser with a time slider (viser), offline and live from the ROS node.

ROS-free: sources.py (what can be shown), server.py (the viser viewer), command.py (the CLI), browser.py
(headless Chromium for screenshots). Needs the `viewer` extra: pip install -e ".[viewer]".
"""
