"""Example: derain two stereo heads (front and rear) with one node each, without collisions.

Each head gets its own node namespace and node name, so its parameters, outputs
(/front/stereo_derained/..., /rear/stereo_derained/...) and diagnostics name stay apart:
  ros2 launch stereo_derain_ros stereo_derain_two_heads.launch.py
Copy it and change HEADS for your robot; every argument of stereo_derain.launch.py can be set
per head.
"""

from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

HEADS = {
    'front': {'namespace': 'front', 'node_name': 'front_derain_node',
              'input_namespace': '/front/stereo', 'image_leaf': 'image_rect_color'},
    'rear': {'namespace': 'rear', 'node_name': 'rear_derain_node',
             'input_namespace': '/rear/stereo', 'image_leaf': 'image_rect'},
}


def generate_launch_description():
    main_launch = PathJoinSubstitution(
        [FindPackageShare('stereo_derain_ros'), 'launch', 'stereo_derain.launch.py'])
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(main_launch),
                                 launch_arguments=arguments.items())
        for arguments in HEADS.values()])
