"""Clean stereo scenes and stereo-consistent rain synthesis (numpy + OpenCV, no ROS, no torch)."""

from stereo_derain_ros.rain.layered import render_layered_rain
from stereo_derain_ros.rain.params import PRESETS, rain_params, RainParams, random_rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import RainSample, render_rain
from stereo_derain_ros.rain.scene import motorcycle_scene, StereoScene
from stereo_derain_ros.rain.sequence import RainSequence

__all__ = [
    'PRESETS',
    'RainParams',
    'RainSample',
    'RainSequence',
    'StereoScene',
    'motorcycle_scene',
    'procedural_scene',
    'rain_params',
    'random_rain_params',
    'render_layered_rain',
    'render_rain',
]
