"""Launch stereo_derain_node between a rectified stereo camera and its consumers.

Example: a driver publishing /stereo/{left,right}/image_rect_color and camera_info:
  ros2 launch stereo_derain_ros stereo_derain.launch.py input_namespace:=/stereo \
      image_leaf:=image_rect_color
publishes /stereo_derained/{left,right}/{image_rect,image_rect_color,camera_info}.

Every node parameter has an argument of the same name; only arguments that are given override
the params file. The package's Fast DDS large-image profile is applied to the processes of this
launch unless FASTRTPS_DEFAULT_PROFILES_FILE is already set (docs/node.md, "Transport").
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from stereo_derain_ros.launch_arguments import (
    declare_arguments,
    input_remappings,
    LAUNCH_ONLY_ARGUMENTS,
    parameter_arguments,
    parameter_overrides,
    reliable_input_overrides,
)
from stereo_derain_ros.transport import large_image_environment


def launch_node(context):
    def given(name):
        return LaunchConfiguration(name).perform(context)

    names = [*parameter_arguments(), *LAUNCH_ONLY_ARGUMENTS]
    values = {name: given(name) for name in names}
    input_namespace, image_leaf = values['input_namespace'], values['image_leaf']
    node = Node(
        package='stereo_derain_ros',
        executable='stereo_derain_node',
        name=values['node_name'],
        namespace=values['namespace'],
        output='screen',
        parameters=[
            given('params_file'),
            parameter_overrides(values),
            reliable_input_overrides(input_namespace, image_leaf, values['reliable_inputs']),
        ],
        remappings=input_remappings(input_namespace, image_leaf),
    )
    return [node]


def generate_launch_description():
    arguments = declare_arguments(DeclareLaunchArgument, PathJoinSubstitution(
        [FindPackageShare('stereo_derain_ros'), 'config', 'stereo_derain.yaml']))
    transport = [SetEnvironmentVariable(name, value)
                 for name, value in large_image_environment().items()]
    return LaunchDescription([*arguments, *transport, OpaqueFunction(function=launch_node)])
