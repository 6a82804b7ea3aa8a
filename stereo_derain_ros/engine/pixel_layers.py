"""Run the small full-resolution nets (fusion gate, refiner) fast on the device they sit on.

Both are a few narrow 3×3 convolutions with ReLUs over every pixel of both views, which on a CPU
costs more in memory traffic than in arithmetic. There they run channels-last over bands of rows
(`CPU_BAND_PIXELS`), each band's maps staying in cache, with each convolution and its ReLU fused
into one oneDNN call (`CPU_FUSED_CONVOLUTION`); on a GPU in bands of `GPU_BAND_PIXELS`, which
takes a 1280×720 pair at once and keeps a 4K pair's maps to a few hundred MB.
"""

import torch
from torch import nn

from stereo_derain_ros.engine.precision import autocast

# Pixels per view taken at once on a CPU in fp32: 16-channel maps for a band of rows that size
# stay in cache, which halves the fusion gate's time on 1280×720 views (one thread, AMD EPYC);
# the band's halo rows make the result the same as over the whole frame. bf16 maps take half
# the bytes, so a band of bf16 takes twice the pixels: that ran the refiner and the gate 3-9 %
# faster than bf16 bands of the fp32 size on both 640×360 and 1280×720 views (AMD EPYC).
CPU_BAND_PIXELS = 2 ** 17
GPU_BAND_PIXELS = 2 ** 21


def run_layers(layers: nn.Sequential, maps: torch.Tensor, halo: int,
               precision: str = 'fp32') -> torch.Tensor:
    """Return what `layers` (same-padded convolutions and ReLUs) make of N×C×H×W `maps`.

    `maps` and `layers` are on one device; `halo` is the rows each side of an output row that
    the layers read (their receptive radius). `precision` is one that `precision.
    resolve_precision` returned for that device; the output is in the dtype it ran in.
    """
    device = maps.device
    height, width = maps.shape[-2:]
    on_cpu = device.type == 'cpu'
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
    cpu_band = CPU_BAND_PIXELS * torch.float32.itemsize // dtype.itemsize
    rows = max(1, (cpu_band if on_cpu else GPU_BAND_PIXELS) // width)
    fused = on_cpu and CPU_FUSED_CONVOLUTION
    bands = []
    with torch.inference_mode():
        for top in range(0, height, rows):
            start, stop = max(0, top - halo), min(height, top + rows + halo)
            band = maps[:, :, start:stop].contiguous(memory_format=torch.channels_last)
            if fused:
                out = fused_layers(layers, band.to(dtype))
            else:
                with autocast(device, precision):
                    out = layers(band)
            bands.append(out[:, :, top - start:min(height, top + rows) - start])
    return bands[0] if len(bands) == 1 else torch.cat(bands, dim=2)


def fused_layers(layers: nn.Sequential, features: torch.Tensor) -> torch.Tensor:
    """Return what `layers` (convolutions and ReLUs) make of `features` on a CPU.

    Each convolution runs in `features`' dtype as oneDNN's convolution with the ReLU after it
    fused in (`CPU_FUSED_CONVOLUTION`), what the layers give one after the other but for the
    order of sums; in fp32 one with a single output map runs as its taps
    (`_single_map_convolution`).
    """
    modules = list(layers)
    out = features
    for index, conv in enumerate(modules):
        if isinstance(conv, nn.ReLU):
            continue
        relu = index + 1 < len(modules) and isinstance(modules[index + 1], nn.ReLU)
        if not relu and out.dtype == torch.float32 and _has_single_map_form(conv):
            out = _single_map_convolution(conv, out)
            continue
        weight, bias = conv.weight.to(out.dtype), conv.bias.to(out.dtype)
        maps = conv.out_channels
        padded = (out.dtype == torch.bfloat16 and conv.groups == 1
                  and 1 < maps < conv.in_channels)
        if padded:
            # oneDNN's bf16 kernel for a few maps (3 from 16) took 1.7× the time of as many
            # maps as inputs (one thread, AMD EPYC), so those run padded with zero maps.
            weight = nn.functional.pad(weight, (0, 0, 0, 0, 0, 0, 0, conv.in_channels - maps))
            bias = nn.functional.pad(bias, (0, conv.in_channels - maps))
        out = torch.ops.mkldnn._convolution_pointwise(
            out, weight, bias, conv.padding, conv.stride, conv.dilation, conv.groups,
            'relu' if relu else 'none', [], '')
        if padded:
            # Gathered once here: a float conversion of the strided maps took 5× as long.
            out = out[:, :maps].contiguous()
    return out


def _has_single_map_form(conv: nn.Conv2d) -> bool:
    """Tell whether `conv` is a same-padded stride-1 convolution to one map (refiner's last)."""
    return (conv.out_channels == 1 and conv.groups == 1 and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.bias is not None
            and conv.padding == tuple(size // 2 for size in conv.kernel_size)
            and all(size % 2 == 1 for size in conv.kernel_size))


def _single_map_convolution(conv: nn.Conv2d, features: torch.Tensor) -> torch.Tensor:
    """Return `conv` of channels-last `features`: a 1×1 convolution to its taps, summed shifted.

    oneDNN's fp32 kernel for a single output map ran a 16-channel 3×3 convolution in the time of
    a 16-to-16 one (12.1 ms for a band of 2×210×640, one thread, AMD EPYC); a 1×1 convolution to
    its 9 taps and 9 shifted sums took 4.6 ms, the refiner on both 640×360 views 135 ms against
    147 (interleaved), within 1e-6 of the layers. In bf16 it saved 2 % and rounded the taps'
    maps, up to 0.16 grey levels off, so bf16 keeps oneDNN's kernel.
    """
    rows, columns = conv.kernel_size
    taps = conv.weight[0].permute(1, 2, 0).reshape(rows * columns, conv.in_channels, 1, 1)
    tap_maps = torch.ops.mkldnn._convolution_pointwise(
        features, taps.to(features.dtype), torch.zeros(rows * columns, dtype=features.dtype),
        (0, 0), (1, 1), (1, 1), 1, 'none', [], '')
    tap_maps = nn.functional.pad(tap_maps.contiguous(),
                                 (columns // 2, columns // 2, rows // 2, rows // 2))
    height, width = features.shape[-2:]
    out = tap_maps[:, :1, :height, :width] + conv.bias.reshape(1, 1, 1, 1)
    for tap in range(1, rows * columns):
        row, column = divmod(tap, columns)
        out += tap_maps[:, tap:tap + 1, row:row + height, column:column + width]
    return out


def _fused_convolution_works() -> bool:
    """Tell whether this torch has oneDNN's fused convolution and it gives what the layers give.

    The op is internal to PyTorch (its compiler emits it), so a torch other than the pinned one
    may lack it or call it otherwise: then the nets run layer by layer.
    """
    if not (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, '_convolution_pointwise')):
        return False
    probe = torch.linspace(-1.0, 1.0, 2 * 4 * 5 * 6).reshape(2, 4, 5, 6)
    # Built on the meta device and filled below, so that no random initialisation moves torch's
    # generator when the engine is imported.
    conv = nn.Conv2d(4, 3, 3, padding=1, device='meta').to_empty(device='cpu')
    with torch.no_grad():
        conv.weight.copy_(torch.linspace(-0.5, 0.5, conv.weight.numel()).reshape_as(conv.weight))
        conv.bias.fill_(0.1)
        try:
            fused = fused_layers(nn.Sequential(conv, nn.ReLU()), probe)
        except (RuntimeError, TypeError):
            return False
        return bool(torch.allclose(fused, torch.relu(conv(probe)), atol=1e-5))


# oneDNN's convolution with the ReLU after it fused in, the op PyTorch's compiler emits for CPU
# convolutions: run eagerly, each ReLU is a pass of its own over 16-channel maps, and the fusion
# gate took 1.2x (bf16) and 1.3x (fp32) the fused time on both 640×360 views (one core of an
# Intel Xeon), for the same shares.
CPU_FUSED_CONVOLUTION = _fused_convolution_works()
