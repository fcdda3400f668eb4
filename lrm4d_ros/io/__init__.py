"""Contract-bag IO (rosbags, no rclpy) and the ROS message helpers it shares with the output-bag writer."""
