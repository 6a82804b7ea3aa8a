"""Install the package for colcon (ament_python) and for pip alike."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'stereo_derain_ros'
SHARE = os.path.join('share', PACKAGE)

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['weights/*.safetensors', 'weights/*.json', 'weights/*.md',
                           'fastdds_large_images.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (SHARE, ['package.xml']),
        (os.path.join(SHARE, 'launch'), glob('launch/*.launch.py')),
        (os.path.join(SHARE, 'config'), glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='stereo_derain_ros maintainers',
    maintainer_email='maintainers@stereo-derain-ros.invalid',
    description='GPU stereo image deraining for ROS 2, ready for stereo_image_proc.',
    license='Apache-2.0',
    python_requires='>=3.10',
    extras_require={
        'test': ['pytest'],
        # ONNX export and the onnxruntime backend; on GPUs use onnxruntime-gpu of the same version.
        'onnx': ['onnx==1.23.2', 'onnxruntime==1.32.0', 'onnxscript==0.7.2'],
    },
    entry_points={
        'console_scripts': [
            'stereo-derain = stereo_derain_ros.cli:main',
            'stereo_derain_node = stereo_derain_ros.node:main',
        ],
    },
)
