"""Cosmos Policy model: ROS-free (never imports rclpy).

Public API, imported lazily so that `import cosmos_policy_ros.model` stays cheap:
CosmosPolicy, Observation, PolicyOutput (policy), LatentLayout/ALOHA_LAYOUT/LIBERO_LAYOUT,
SampleKind, ValueMode (layout), SamplerConfig, sample (sampler), TextEmbeddings (text),
load_statistics, write_statistics (normalization), TrainBatch, train_step (training).
"""
import importlib

_EXPORTS = {
    'CosmosPolicy': 'policy', 'Observation': 'policy', 'PolicyOutput': 'policy',
    'PolicyInputError': 'policy',
    'LatentLayout': 'layout', 'ALOHA_LAYOUT': 'layout', 'LIBERO_LAYOUT': 'layout',
    'SampleKind': 'layout', 'ValueMode': 'layout', 'LayoutError': 'layout',
    'SamplerConfig': 'sampler', 'sample': 'sampler', 'call_sigmas': 'sampler',
    'TrainingNoise': 'diffusion', 'diffusion_loss': 'diffusion',
    'TextEmbeddings': 'text', 'TextEmbeddingError': 'text', 'convert_pickle': 'text',
    'DatasetStatistics': 'normalization', 'load_statistics': 'normalization',
    'write_statistics': 'normalization', 'StatisticsError': 'normalization',
    'preprocess_image': 'preprocess',
    'TrainBatch': 'training', 'train_step': 'training', 'encode_batch': 'training',
    'value_targets': 'training', 'make_optimizer': 'training',
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
