"""Derain a rectified stereo camera, then run stereo_image_proc's disparity and point cloud on it.

stereo_image_proc is included with namespace:=<output_namespace> and launch_image_proc:=False,
so its DisparityNode and PointCloudNode consume the derained images (image_rect and, for colour
input, image_rect_color) and the republished camera_info with their default exact-time sync.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

FORWARDED_ARGUMENTS = {
    'input_namespace': ('/stereo', 'namespace holding left/ and right/ image topics'),
    'output_namespace': ('stereo_derained', 'namespace of the derained images and disparity'),
    'image_leaf': ('image_rect_color', 'leaf name of the input image topics'),
    'model': ('bandnet', 'model name'),
    'weights': ('', 'checkpoint (.safetensors); empty = the packaged weights of the model'),
    'device': ('auto', "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    'use_sim_time': ('false', 'follow /clock (bag replay)'),
}


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in FORWARDED_ARGUMENTS.items()]
    arguments.append(DeclareLaunchArgument(
        'stereo_algorithm', default_value='0', description='0 = block matching, 1 = SGBM'))
    derain = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('stereo_derain_ros'), 'launch', 'stereo_derain.launch.py'])),
        launch_arguments={name: LaunchConfiguration(name)
                          for name in FORWARDED_ARGUMENTS}.items(),
    )
    disparity = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('stereo_image_proc'), 'launch', 'stereo_image_proc.launch.py'])),
        launch_arguments={
            'namespace': LaunchConfiguration('output_namespace'),
            'launch_image_proc': 'False',
            'approximate_sync': 'False',
            'stereo_algorithm': LaunchConfiguration('stereo_algorithm'),
        }.items(),
    )
    return LaunchDescription([*arguments, derain, disparity])
