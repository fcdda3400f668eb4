"""Launch the lrm4d reconstruct node (and optionally RViz).

    ros2 launch lrm4d_ros reconstruct.launch.py [config:=FILE] [checkpoint:=FILE] [device:=cpu|cuda] [rviz:=true]
                                                [rviz_config:=FILE] [use_sim_time:=true]   (bag playback: --clock)

Each shipped config has its RViz file: rviz/lrm4d.rviz (config/reconstruct.yaml, the default) and
rviz/robot_realsense_tf.rviz (config/robot_realsense_tf.yaml: frame odom, virtual camera chase).

The service is advertised at /render_view (the node's ~/render_view remapped); topics stay private under
/lrm4d_reconstruct/ (gaussians, status, <virtual>/image, <virtual>/depth, <virtual>/camera_info). Input topics
are relative (<cam>/image_raw, <cam>/camera_info, <cam>/pose): add remappings to the Node below for your robot.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

NODE_NAME = "lrm4d_reconstruct"


def _reconstruct_node(context):
    # Only non-empty arguments override the YAML, so a device or checkpoint set in the file is kept.
    overrides = {name: LaunchConfiguration(name).perform(context) for name in ("checkpoint", "device")}
    overrides = {name: ParameterValue(value, value_type=str) for name, value in overrides.items() if value}
    overrides["use_sim_time"] = LaunchConfiguration("use_sim_time").perform(context).lower() == "true"
    return [Node(
        package="lrm4d_ros",
        executable="reconstruct_node",
        name=NODE_NAME,
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("config").perform(context), overrides],
        remappings=[("~/render_view", "/render_view")],
    )]


def generate_launch_description():
    share = FindPackageShare("lrm4d_ros")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "reconstruct.yaml"]),
                              description="YAML parameter file of the reconstruct node"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="safetensors checkpoint; empty = the shipped checkpoint"),
        DeclareLaunchArgument("device", default_value="",
                              description="torch device (cpu, cuda, cuda:1); empty = CUDA when available"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with rviz_config"),
        DeclareLaunchArgument("rviz_config", default_value=PathJoinSubstitution([share, "rviz", "lrm4d.rviz"]),
                              description="RViz file: its fixed frame and topics must be the config's world_frame "
                                          "and virtual cameras (rviz/robot_realsense_tf.rviz for that config)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag playback with --clock) as the node's ROS time"),
        OpaqueFunction(function=_reconstruct_node),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", LaunchConfiguration("rviz_config")],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])
