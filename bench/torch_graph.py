# The network bench's PyTorch-CPU peer: runs one of incept's Graphs (written by bench/torch_peer.ts as
# graph.json + params.f32 + input.f32) with torch.nn.functional ops, times forwards on the wall clock
# and writes timings.json and the outputs (outputs.f32). A translation to another engine, like
# bench/tfjs_graph.ts: the graph's NHWC values are NCHW tensors here (PyTorch's native layout), TF's
# SAME padding is worked out from its definition, and batchnorm is folded into the conv before it
# (what an inference deployment does; ONNX Runtime and tfjs-converter do the same).
#
#   python3 bench/torch_graph.py DIR RUNS WARMUP
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

NHWC_TO_NCHW = [0, 2, 3, 1]  # NHWC axis a is NCHW axis NHWC_TO_NCHW[a]


def same_pads(size, k, s, d):
    """TF SAME: (before, after) so that out = ceil(size / s); the extra pixel goes after."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def pads_of(node, x, kernel, strides, dilations):
    """(top, bottom, left, right) of a node's padding attribute for input x (NCHW)."""
    p = node['attrs']['padding']
    if p == 'VALID':
        return 0, 0, 0, 0
    if p in ('SAME', 'SAME_UPPER'):
        t, b = same_pads(x.shape[2], kernel[0], strides[0], dilations[0])
        l, r = same_pads(x.shape[3], kernel[1], strides[1], dilations[1])
        return t, b, l, r
    if isinstance(p, list):
        t, l, b, r = p
        return t, b, l, r
    raise ValueError(f"torch peer: {node['name']}: padding {p!r} is not supported")


def conv(node, x, w, bias):
    a = node['attrs']
    kh, kw = w.shape[2], w.shape[3]
    t, b, l, r = pads_of(node, x, (kh, kw), a['strides'], a['dilations'])
    if t == b and l == r:
        return F.conv2d(x, w, bias, a['strides'], (t, l), a['dilations'], a['groups'])
    return F.conv2d(F.pad(x, (l, r, t, b)), w, bias, a['strides'], 0, a['dilations'], a['groups'])


def pool(node, x):
    a = node['attrs']
    if a.get('ceilMode') or a.get('dilations') not in (None, [1, 1]):
        raise ValueError(f"torch peer: {node['name']}: ceil mode / dilated pooling is not supported")
    t, b, l, r = pads_of(node, x, a['kernel'], a['strides'], (1, 1))
    if node['op'] == 'maxpool':
        if t != b or l != r:
            x, t, l = F.pad(x, (l, r, t, b), value=-math.inf), 0, 0
        return F.max_pool2d(x, a['kernel'], a['strides'], (t, l))
    if t != b or l != r:
        raise ValueError(f"torch peer: {node['name']}: asymmetric average-pool padding is not supported")
    # TF leaves padded taps out of the divisor; ONNX's count_include_pad puts them in.
    return F.avg_pool2d(x, a['kernel'], a['strides'], (t, l), count_include_pad=bool(a.get('countIncludePad')))


def load(folder):
    with open(os.path.join(folder, 'graph.json')) as f:
        g = json.load(f)
    raw = np.fromfile(os.path.join(folder, 'params.f32'), dtype='<f4')
    params = {}
    for p in g['params']:
        n = int(np.prod(p['shape'])) if p['shape'] else 1
        params[p['name']] = torch.from_numpy(raw[p['offset']:p['offset'] + n].reshape(p['shape']).copy())
    return g, params


def fold(g, params):
    """Conv filters in OIHW, batchnorm folded in where a conv's only reader is a batchnorm."""
    readers = {}
    for n in g['nodes']:
        for i in n['inputs']:
            readers.setdefault(i, []).append(n)
    convs, skipped = {}, {}
    for n in g['nodes']:
        if n['op'] != 'conv2d':
            continue
        w = params[n['inputs'][1]].permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        bias, out = None, n['output']
        r = readers.get(out, [])
        if len(r) == 1 and r[0]['op'] == 'batchnorm' and out not in g['outputs']:
            bn = r[0]
            rest = bn['inputs'][1:]
            gamma = params[rest.pop(0)] if bn['attrs']['scale'] else 1.0
            beta, mean, var = (params[v] for v in rest)
            scale = gamma / torch.sqrt(var + bn['attrs']['epsilon'])
            w = w * scale.reshape(-1, 1, 1, 1)
            bias = beta - mean * scale
            skipped[bn['name']] = out  # the batchnorm's output is the fused conv's
            out = bn['output']
        convs[n['name']] = (w, bias, out)
    return convs, skipped


def run_graph(g, params, convs, skipped, x):
    values = {g['input']: x}
    get = lambda v: values[v] if v in values else params[v]
    for n in g['nodes']:
        op, name = n['op'], n['name']
        if name in skipped:
            continue
        if op == 'conv2d':
            w, bias, out = convs[name]
            values[out] = conv(n, get(n['inputs'][0]), w, bias)
            continue
        x = get(n['inputs'][0])
        # Axes of the graph are NHWC axes where the input is rank 4.
        axis = lambda a: NHWC_TO_NCHW[a % 4] if x.dim() == 4 else a
        if op == 'relu':
            y = F.relu(x)
        elif op == 'relu6':
            y = F.hardtanh(x, 0.0, 6.0)
        elif op in ('maxpool', 'avgpool'):
            y = pool(n, x)
        elif op == 'concat':
            y = torch.cat([get(v) for v in n['inputs']], axis(n['attrs']['axis']))
        elif op == 'dropout':
            y = x
        elif op == 'bias_add':
            b = get(n['inputs'][1])
            y = x + (b.reshape(1, -1, 1, 1) if x.dim() == 4 else b)
        elif op == 'squeeze':
            y = x
            for a in sorted((axis(a) for a in n['attrs']['axes']), reverse=True):
                y = y.squeeze(a)
        elif op == 'softmax':
            y = F.softmax(x, axis(n['attrs']['axis']))
        elif op == 'batchnorm':
            raise ValueError(f'torch peer: {name}: a batchnorm not after a conv is not supported')
        else:
            raise ValueError(f"torch peer: no translation for op '{op}' ({name})")
        values[n['output']] = y
    return [values[o] for o in g['outputs']]


def main():
    folder, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    g, params = load(folder)
    convs, skipped = fold(g, params)
    setup_ms = (time.perf_counter() - t0) * 1000
    nhwc = np.fromfile(os.path.join(folder, 'input.f32'), dtype='<f4').reshape(g['input_shape'])

    def forward():
        # Upload's equivalent: the NHWC batch becomes the NCHW tensor PyTorch works in.
        start = time.perf_counter()
        with torch.inference_mode():
            x = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()
            outs = [o.numpy() for o in run_graph(g, params, convs, skipped, x)]
        return (time.perf_counter() - start) * 1000, outs

    first_ms, outs = forward()
    for _ in range(warmup):
        forward()
    samples = []
    for _ in range(runs):
        ms, outs = forward()
        samples.append(ms)
    with open(os.path.join(folder, 'outputs.f32'), 'wb') as f:
        for o in outs:
            # Rank-4 outputs go back to NHWC so the bench compares like with like.
            f.write(np.ascontiguousarray(o.transpose(0, 2, 3, 1) if o.ndim == 4 else o, dtype='<f4').tobytes())
    info = {
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'setup_ms': setup_ms,
        'first_ms': first_ms,
        'samples_ms': samples,
        'output_sizes': [int(o.size) for o in outs],
    }
    tmp = os.path.join(folder, 'timings.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(info, f)
    os.replace(tmp, os.path.join(folder, 'timings.json'))


if __name__ == '__main__':
    main()
