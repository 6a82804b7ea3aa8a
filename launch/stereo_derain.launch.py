"""Launch stereo_derain_node between a rectified stereo camera and its consumers.

Example: a driver publishing /stereo/{left,right}/image_rect_color and camera_info:
  ros2 launch stereo_derain_ros stereo_derain.launch.py input_namespace:=/stereo \
      image_leaf:=image_rect_color
publishes /stereo_derained/{left,right}/{image_rect,image_rect_color,camera_info}.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    input_namespace = LaunchConfiguration('input_namespace')
    image_leaf = LaunchConfiguration('image_leaf')

    def input_topic(side, leaf):
        return [input_namespace, f'/{side}/', leaf]

    arguments = [
        DeclareLaunchArgument(
            'input_namespace', default_value='/stereo',
            description='namespace holding left/ and right/ image and camera_info topics'),
        DeclareLaunchArgument(
            'output_namespace', default_value='stereo_derained',
            description='namespace of the derained output (stereo_image_proc namespace:=)'),
        DeclareLaunchArgument(
            'image_leaf', default_value='image_rect',
            choices=['image_rect', 'image_rect_color', 'image_raw'],
            description='leaf name of the input image topics'),
        DeclareLaunchArgument(
            'output_image_leaf', default_value='image_rect', choices=['image_rect', 'image_raw'],
            description='leaf name of the output images (image_raw to derain before image_proc)'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('stereo_derain_ros'), 'config', 'stereo_derain.yaml']),
            description='parameters file of the node'),
        DeclareLaunchArgument('model', default_value='bandnet', description='model name'),
        DeclareLaunchArgument(
            'weights', default_value='',
            description='checkpoint (.safetensors); empty = the packaged weights of the model'),
        DeclareLaunchArgument(
            'device', default_value='auto', description="'auto', 'cpu', 'cuda' or 'cuda:N'"),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='follow /clock (bag replay with ros2 bag play --clock)'),
    ]

    node = Node(
        package='stereo_derain_ros',
        executable='stereo_derain_node',
        name='stereo_derain_node',
        output='screen',
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'model': ParameterValue(LaunchConfiguration('model'), value_type=str),
                'weights': ParameterValue(LaunchConfiguration('weights'), value_type=str),
                'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                'output_namespace': ParameterValue(
                    LaunchConfiguration('output_namespace'), value_type=str),
                'output_image_leaf': ParameterValue(
                    LaunchConfiguration('output_image_leaf'), value_type=str),
                'use_sim_time': ParameterValue(
                    LaunchConfiguration('use_sim_time'), value_type=bool),
            },
        ],
        remappings=[
            ('left/image_rect', input_topic('left', image_leaf)),
            ('left/image_rect/compressed', input_topic('left', [image_leaf, '/compressed'])),
            ('left/camera_info', input_topic('left', 'camera_info')),
            ('right/image_rect', input_topic('right', image_leaf)),
            ('right/image_rect/compressed', input_topic('right', [image_leaf, '/compressed'])),
            ('right/camera_info', input_topic('right', 'camera_info')),
        ],
    )
    return LaunchDescription([*arguments, node])
