"""The network against independent computations written from docs/method.md."""
import os
import platform

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import build_model
from model.aggregate import aggregate
from model.token_refine import TokenLearner, prototype_weights
from model.vit import resample_grid_pos_embed, window_partition, window_unpartition
from tests.conftest import tiny_config


def _frames(n, h=48, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


def _masks(n, k, h=48, w=80, seed=1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k + 1, (n, h // 8, w // 8), generator=g)
    labels = F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    return F.one_hot(labels, k + 1).permute(0, 3, 1, 2)[:, 1:].float()


def _spec_block(blk, x):
    """One pre-norm ViT block (docs/method.md, section 1) written out: LN, multi-head softmax attention, LN, GELU MLP."""
    y = F.layer_norm(x, (x.shape[-1],), blk.norm1.weight, blk.norm1.bias, 1e-6)
    heads = blk.attn.num_heads
    q, k, v = (y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).chunk(3, dim=-1)
    split = lambda t: t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    o = (att @ v).transpose(1, 2).reshape(x.shape)
    x = x + o @ blk.attn.proj.weight.T + blk.attn.proj.bias
    y = F.layer_norm(x, (x.shape[-1],), blk.norm2.weight, blk.norm2.bias, 1e-6)
    return x + F.gelu(y @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias


def _spec_tokens(model, frame, mask=None):
    """patch_embed (+ mask_patch_embed) + pos_embed_new resampled bicubically to the frame's grid."""
    p, mp = model.patch_embed.proj, model.mask_patch_embed.proj
    h, w = frame.shape[-2] // 16, frame.shape[-1] // 16
    g = model.config.train_grid
    grid = model.pos_embed_new[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    pos = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    t = F.conv2d(frame, p.weight, p.bias, stride=16).flatten(2).transpose(1, 2)
    if mask is not None:
        t = t + F.conv2d(mask, mp.weight, mp.bias, stride=16).flatten(2).transpose(1, 2)
    return t + pos


def _naive_vit_query_tokens(model, memory_frames, memory_masks, query):
    """Spec section 3 (B path) for ONE object written out directly: every frame's tokens are
    patch_embed (+ mask_patch_embed) + bicubic pos, all concatenated, full attention, all rows."""
    h, w = query.shape[-2] // 16, query.shape[-1] // 16
    x = torch.cat([_spec_tokens(model, f, m) for f, m in zip(memory_frames, memory_masks)]
                  + [_spec_tokens(model, query)], dim=1)
    for blk in model.blocks:
        x = _spec_block(blk, x)
    x = F.layer_norm(x, (x.shape[-1],), model.norm.weight, model.norm.bias, 1e-6)
    return x[:, -h * w:].transpose(1, 2).reshape(1, -1, h, w)


def _spec_within_frame(model, tokens, h, w):
    """blocks[0:L] on one frame [1, h*w, C]; with local windows, each (h//2) x (h//2) window of the
    grid zero-padded at the bottom/right passes the blocks alone (padding tokens attend too)."""
    blocks = model.blocks[:model.config.layer_index]
    if not model.config.use_local_window:
        for blk in blocks:
            tokens = _spec_block(blk, tokens)
        return tokens
    win = h // 2
    hp, wp = -(-h // win) * win, -(-w // win) * win
    grid = torch.zeros(hp, wp, tokens.shape[-1], dtype=tokens.dtype)
    grid[:h, :w] = tokens[0].view(h, w, -1)
    for r in range(0, hp, win):
        for c in range(0, wp, win):
            x = grid[r:r + win, c:c + win].reshape(1, win * win, -1)
            for blk in blocks:
                x = _spec_block(blk, x)
            grid[r:r + win, c:c + win] = x.view(win, win, -1)
    return grid[:h, :w].reshape(1, h * w, -1)


def _spec_prototype_weights(masks, h, w):
    """Spec section 3, in numpy: masks [K, H, W] -> (w_fg, w_bg) [K, h, w]."""
    m = masks.numpy().astype(np.float32)
    bg = (np.float32(1) - m.sum(0) == 1).astype(np.float32)
    stack = torch.from_numpy(np.concatenate([bg[None], m]))[None]
    small = F.interpolate(stack, size=(h, w), mode="bilinear", align_corners=False)[0].double().numpy()
    hard = np.eye(len(small))[small.argmax(0)].transpose(2, 0, 1)[1:]
    return torch.from_numpy(small[1:] * hard), torch.from_numpy((1 - small[1:]) * (1 - hard))


def _spec_token_learner(tl, features, weight):
    """features [h*w, C], weight [h, w] -> prototypes [N, C], docs/method.md, section 3 step by step."""
    h, w = weight.shape
    c = features.shape[-1]
    x = torch.cat([features.view(h, w, c), weight[..., None].to(features.dtype)], dim=-1)
    x = F.layer_norm(x, (c + 1,), tl.input_norm.weight, tl.input_norm.bias, tl.input_norm.eps)
    x = F.gelu(F.conv2d(x.permute(2, 0, 1)[None], tl.patch_to_cluster_atten[0].weight, padding=1))
    logits = (x[0].flatten(1).T @ tl.patch_to_cluster_linear.weight.T + tl.patch_to_cluster_linear.bias).T
    logits[:, weight.flatten() == 0] = float("-inf")
    attn = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)
    return F.layer_norm(attn @ features, (c,), tl.norm.weight, tl.norm.bias, tl.norm.eps)


def _spec_decoder(sd, m16):
    """Spec sections 1 (fpn heads) and 2 (STCN decoder) with functional calls on the state_dict."""
    def conv(x, name):
        return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], padding=1)

    def resblock(x, name):
        r = conv(F.relu(conv(F.relu(x), name + ".conv1")), name + ".conv2")
        return (conv(x, name + ".downsample") if name + ".downsample.weight" in sd else x) + r

    def upsample_block(skip, up, name):
        x = conv(skip, name + ".skip_conv") + F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        return resblock(x, name + ".out_conv")

    dim = m16.shape[1]
    m8 = F.conv_transpose2d(m16, sd["fpn2.0.weight"], sd["fpn2.0.bias"], stride=2)
    m4 = F.conv_transpose2d(m16, sd["fpn1.0.weight"], sd["fpn1.0.bias"], stride=2)
    m4 = F.layer_norm(m4.permute(0, 2, 3, 1), (dim,), sd["fpn1.1.ln.weight"], sd["fpn1.1.ln.bias"], 1e-6)
    m4 = F.conv_transpose2d(F.gelu(m4.permute(0, 3, 1, 2)), sd["fpn1.3.weight"], sd["fpn1.3.bias"], stride=2)
    x = resblock(m16, "stcn_decoder.compress")
    x = upsample_block(m8, x, "stcn_decoder.up_16_8")
    x = upsample_block(m4, x, "stcn_decoder.up_8_4")
    x = conv(F.relu(x), "stcn_decoder.pred")
    return F.interpolate(x, size=(m16.shape[-2] * 16, m16.shape[-1] * 16), mode="bilinear", align_corners=False)


@torch.no_grad()
def test_decoder_and_fpn_heads_match_the_spec(tiny_b):
    torch.manual_seed(1)
    for p in tiny_b.parameters():
        p.normal_(0, 0.1)
    model = tiny_b.double()
    m16 = torch.randn(2, 192, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(model.decode(m16), _spec_decoder(model.state_dict(), m16), atol=1e-9, rtol=1e-9)


@torch.no_grad()
def test_bs_path_with_windows_matches_the_spec_written_out(tiny_bs):
    """Within-frame blocks in windows, prototype weights, token learners, then the joint stage over
    [first-frame prototypes; previous-frame prototypes; query tokens], for each of 2 objects."""
    torch.manual_seed(2)
    tiny_bs.pos_embed_new.normal_()
    model = tiny_bs.double()
    h, w = 5, 6
    f0, f1, q = (_frames(1, 16 * h, 16 * w, seed=s).double() for s in (0, 1, 2))
    m0 = _masks(1, 2, 16 * h, 16 * w, seed=5).double()
    m1 = torch.softmax(torch.randn(1, 3, 16 * h, 16 * w, dtype=torch.float64) * 3, dim=1)[:, 1:]
    memory = torch.cat([model.encode_memory(f0, m0), model.encode_memory(f1, m1)], dim=2)
    m16 = model.joint(memory, model.encode_query(q), (h, w))

    query = _spec_within_frame(model, _spec_tokens(model, q), h, w)
    fg0, bg0 = _spec_prototype_weights(m0[0].float(), h, w)
    fg1, bg1 = _spec_prototype_weights(m1[0].float(), h, w)
    for k in range(2):
        prototypes = []
        for frame, masks, fg, bg in ((f0, m0, fg0, bg0), (f1, m1, fg1, bg1)):
            features = _spec_within_frame(model, _spec_tokens(model, frame, masks[:, k:k + 1]), h, w)[0]
            prototypes += [_spec_token_learner(model.tlearner, features, fg[k]),
                           _spec_token_learner(model.tlearner_back, features, bg[k])]
        x = torch.cat(prototypes + [query[0]])[None]
        for blk in model.blocks[model.config.layer_index:]:
            x = _spec_block(blk, x)
        x = F.layer_norm(x, (x.shape[-1],), model.norm.weight, model.norm.bias, 1e-6)
        expected = x[:, -h * w:].transpose(1, 2).reshape(1, -1, h, w)
        torch.testing.assert_close(m16[:, k], expected, atol=1e-5, rtol=1e-5)  # weight maps are fp32 (spec)


@torch.no_grad()
def test_b_path_matches_direct_computation_and_batches_objects(tiny_b):
    torch.manual_seed(3)
    tiny_b.pos_embed_new.normal_()
    f0, f1, q = _frames(1, seed=0), _frames(1, seed=1), _frames(1, seed=2)
    m0, m1 = _masks(1, 3, seed=5), torch.rand(1, 3, 48, 80)
    memory = torch.cat([tiny_b.encode_memory(f0, m0), tiny_b.encode_memory(f1, m1)], dim=2)
    m16 = tiny_b.joint(memory, tiny_b.encode_query(q), (3, 5))
    for k in range(3):
        expected = _naive_vit_query_tokens(tiny_b, [f0, f1], [m0[:, k:k + 1], m1[:, k:k + 1]], q)
        torch.testing.assert_close(m16[:, k], expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("bs", [False, True])
def test_batched_objects_equal_single_objects(bs, tiny_b, tiny_bs):
    model = tiny_bs if bs else tiny_b
    f, q, masks = _frames(1), _frames(1, seed=4), _masks(1, 3)
    memory = model.encode_memory(f, masks)
    logits = model.segment(memory, model.encode_query(q), (3, 5))
    for k in range(3):
        # BS: an object's prototypes depend on the other objects' masks (background weights), so
        # its memory comes from the joint call; the joint stage and decoder still run alone.
        single_memory = memory[:, k:k + 1] if bs else model.encode_memory(f, masks[:, k:k + 1])
        single = model.segment(single_memory, model.encode_query(q), (3, 5))
        torch.testing.assert_close(logits[:, k], single[:, 0], atol=1e-5, rtol=1e-5)


def test_skipping_absent_objects_keeps_logits_and_gradients(tiny_b):
    """Training skips absent target slots; what it computes must equal the full batch, gradients too."""
    frames, query, masks = _frames(3).unsqueeze(1), _frames(3, seed=4), _masks(3, 2).unsqueeze(1)
    present = torch.tensor([[True, False], [True, True], [False, True]])

    def loss_and_grads(skip):
        tiny_b.zero_grad()
        logits = tiny_b(frames, masks, query, present if skip else None)
        loss = (torch.sigmoid(logits) * present[..., None, None]).square().mean()
        loss.backward()
        return logits, {n: p.grad.clone() for n, p in tiny_b.named_parameters() if p.grad is not None}

    full_logits, full_grads = loss_and_grads(skip=False)
    skip_logits, skip_grads = loss_and_grads(skip=True)
    torch.testing.assert_close(skip_logits[present], full_logits[present], atol=1e-5, rtol=1e-5)
    assert (skip_logits[~present] == 0).all()
    assert skip_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(skip_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


@torch.no_grad()
def test_pruned_last_block_equals_full_block(tiny_b):
    x = torch.randn(2, 40, 192)
    blk = tiny_b.blocks[-1]
    torch.testing.assert_close(blk(x, query_rows=15), blk(x)[:, -15:], atol=1e-5, rtol=1e-5)


def test_soft_aggregation_sums_to_one_and_matches_direct_formula():
    p = torch.rand(3, 1, 7, 9, dtype=torch.float64)
    p[0, 0, 0, 0] = 1.0  # exercises the clamp
    out = aggregate(p, dim=0)
    torch.testing.assert_close(out.sum(0), torch.ones(1, 7, 9, dtype=torch.float64))
    pn = p.numpy()
    full = np.concatenate([np.prod(1 - pn, axis=0, keepdims=True), pn]).clip(1e-7, 1 - 1e-7)
    odds = full / (1 - full)
    np.testing.assert_allclose(out.numpy(), odds / odds.sum(0, keepdims=True), rtol=1e-10)


def test_token_learner_all_zero_weight_gives_zero_rows():
    torch.manual_seed(0)
    tl = TokenLearner(16, 5)
    feats = torch.randn(2, 3, 4, 16)
    weight = torch.zeros(2, 1, 3, 4)
    weight[1, 0, 1, 2] = 0.7
    attn = tl.attention(feats, weight)
    assert not torch.isnan(attn).any()
    assert torch.all(attn[0] == 0)
    # Only the one non-zero position can be attended to.
    torch.testing.assert_close(attn[1, :, 1 * 4 + 2], torch.ones(5))
    tokens = tl(feats, weight)
    torch.testing.assert_close(tokens[0], tl.norm(torch.zeros(5, 16)))


def test_prototype_weights_follow_the_spec():
    torch.manual_seed(0)
    masks = torch.rand(1, 2, 32, 48) * 0.5
    masks[:, :, :8] = 0  # a region with no object: background there
    w_fg, w_bg = prototype_weights(masks, (4, 6))
    fg, bg = _spec_prototype_weights(masks[0], 4, 6)
    torch.testing.assert_close(w_fg[0].double(), fg, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(w_bg[0].double(), bg, rtol=1e-6, atol=1e-7)
    assert (fg[:, :1] == 0).all() and (bg[:, :1] > 0).all()


@pytest.mark.parametrize("h,w,window", [(4, 6, 2), (5, 7, 2), (3, 8, 1), (6, 4, 3)])
def test_window_partition_round_trips(h, w, window):
    x = torch.randn(2, h, w, 8)
    windows, padded = window_partition(x, window)
    assert windows.shape[1] == window * window
    torch.testing.assert_close(window_unpartition(windows, window, padded, (h, w)), x)
    # Padding is zeros at the bottom/right.
    full = window_unpartition(windows, window, padded, padded)
    assert torch.all(full[:, h:] == 0) and torch.all(full[:, :, w:] == 0)


def test_pos_embed_resampling_keeps_same_grid_and_class_row():
    pos = torch.randn(1, 1 + 24 * 24, 8)
    assert resample_grid_pos_embed(pos, (24, 24)) is pos
    out = resample_grid_pos_embed(pos, (30, 54))
    assert out.shape == (1, 1 + 30 * 54, 8)
    torch.testing.assert_close(out[:, :1], pos[:, :1])
    grid = pos[:, 1:].reshape(1, 24, 24, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(30, 54), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(out[:, 1:], ref)


@pytest.mark.parametrize("bs", [False, True])
def test_backward_reaches_every_trainable_parameter(bs):
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=bs, local_window=bs), drop_path_rate=0.1).train()
    frames, query = _frames(2, 64, 64)[:, None], _frames(2, 64, 64, seed=9)
    masks = _masks(2, 2, 64, 64)[:, None]
    logits = model(frames, masks, query)
    assert logits.shape == (2, 2, 64, 64)
    logits.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert no_grad == []
    assert "pos_embed_new" not in dict(model.named_parameters())


@torch.no_grad()
def test_bf16_autocast_on_cpu_is_close_to_fp32(tiny_b):
    """bf16 autocast really runs (the result differs from fp32) and stays close, with logits large
    enough that sigmoid is not flat at 0.5 (where any error would vanish)."""
    with torch.no_grad():
        tiny_b.stcn_decoder.pred.weight.mul_(20)
    f, q, masks = _frames(1), _frames(1, seed=4), _masks(1, 2)
    logits32 = tiny_b.segment(tiny_b.encode_memory(f, masks), tiny_b.encode_query(q), (3, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits16 = tiny_b.segment(tiny_b.encode_memory(f, masks), tiny_b.encode_query(q), (3, 5))
    assert logits32.abs().max() > 2                       # sigmoid far from flat somewhere
    error = (torch.sigmoid(logits16.float()) - torch.sigmoid(logits32)).abs().max()
    assert 0 < error < 0.05


def test_frames_not_multiple_of_patch_are_rejected(tiny_b):
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_b.encode_query(torch.zeros(1, 3, 50, 64))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or not os.path.isfile("/proc/cpuinfo"),
                    reason="reads the x86 CPU flags from /proc/cpuinfo")
def test_native_bf16_follows_the_cpu_flags():
    """--amp's bf16 is native only with AVX512-BF16 or AMX (plain AVX-512 emulates it)."""
    from util.device import cpu_has_native_bf16
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16", "amx_tile"} & set(flags))


def test_patch_embedding_is_one_linear_map_per_patch():
    """model.layers.PatchEmbed against the patches cut out by hand and multiplied by the kernel."""
    from model.layers import PatchEmbed
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=4, in_chans=3, embed_dim=5)
    x = torch.randn(2, 3, 8, 12)
    patches = x.reshape(2, 3, 2, 4, 3, 4).permute(0, 2, 4, 1, 3, 5).reshape(2, 6, 48)   # row-major patches
    expected = patches @ embed.proj.weight.reshape(5, 48).T + embed.proj.bias
    torch.testing.assert_close(embed(x), expected, rtol=1e-5, atol=1e-5)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    from model.layers import DropPath
    torch.manual_seed(0)
    drop = DropPath(0.25)
    x = torch.ones(20000, 3, 2)
    y = drop(x)
    per_sample = y.reshape(20000, -1)
    values = per_sample.unique()
    assert len(values) == 2 and values[0] == 0 and abs(values[1].item() - 1 / 0.75) < 1e-6
    assert (per_sample == per_sample[:, :1]).all()                  # a sample is kept or dropped whole
    assert abs(per_sample[:, 0].eq(0).float().mean().item() - 0.25) < 0.02
    assert torch.equal(drop.eval()(x), x)
