"""Derain a rectified stereo camera, then run stereo_image_proc's disparity and point cloud on it.

Takes every argument of stereo_derain.launch.py and forwards them unchanged. stereo_image_proc is
included with namespace:=<where the node publishes> and launch_image_proc:=False, so its
DisparityNode and PointCloudNode consume the derained images (image_rect and, for colour input,
image_rect_color) and the republished camera_info with their default exact-time sync.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from stereo_derain_ros.launch_arguments import (
    declare_arguments,
    LAUNCH_ONLY_ARGUMENTS,
    output_namespace,
    parameter_arguments,
)

FORWARDED_ARGUMENTS = ['params_file', *LAUNCH_ONLY_ARGUMENTS, *parameter_arguments()]


def launch_stereo_image_proc(context):
    given = {name: LaunchConfiguration(name).perform(context) for name in FORWARDED_ARGUMENTS}
    disparity = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('stereo_image_proc'), 'launch', 'stereo_image_proc.launch.py'])),
        launch_arguments={
            'namespace': output_namespace(given, given['params_file']),
            'launch_image_proc': 'False',
            'approximate_sync': 'False',
            'stereo_algorithm': LaunchConfiguration('stereo_algorithm'),
        }.items(),
    )
    return [disparity]


def generate_launch_description():
    arguments = declare_arguments(DeclareLaunchArgument, PathJoinSubstitution(
        [FindPackageShare('stereo_derain_ros'), 'config', 'stereo_derain.yaml']))
    arguments.append(DeclareLaunchArgument(
        'stereo_algorithm', default_value='0', description='0 = block matching, 1 = SGBM'))
    derain = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('stereo_derain_ros'), 'launch', 'stereo_derain.launch.py'])),
        launch_arguments={name: LaunchConfiguration(name)
                          for name in FORWARDED_ARGUMENTS}.items(),
    )
    return LaunchDescription([*arguments, derain,
                              OpaqueFunction(function=launch_stereo_image_proc)])
