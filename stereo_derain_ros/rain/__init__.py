"""Clean stereo scenes and stereo-consistent rain synthesis (numpy + OpenCV, no ROS, no torch)."""
