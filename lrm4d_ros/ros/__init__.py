"""The ROS 2 adapter: the reconstruct node, its clients and rclpy's message classes (the only place importing
ROS). The generated interfaces are found through the package path set up in lrm4d_ros/__init__.py."""
