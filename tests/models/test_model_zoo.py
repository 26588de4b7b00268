"""Every registered model: output contract, gradients and a few training steps on a tiny batch."""

import pytest
import torch
from tiny_models import TINY_KWARGS

from sphsal.models import build_loss, create_model

SUM_NORMALISED = {"avs360", "avs360_visual", "avs360_no_aem", "aem_ecb"}
TRAINABLE = sorted(set(TINY_KWARGS) - {"aem_ecb"})


@pytest.mark.parametrize("name", sorted(TINY_KWARGS))
def test_forward_contract_and_backward_to_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name, **TINY_KWARGS[name]).train()
    out = model(**model.example_inputs(batch_size=2))
    assert out.shape == (2, 1, *model.input_spec.output_size)
    assert torch.isfinite(out).all() and (out >= 0).all()
    if name in SUM_NORMALISED:
        assert torch.allclose(out.sum(dim=(2, 3)), torch.ones(2, 1), atol=1e-5)
    if name not in TRAINABLE:
        return
    target = torch.rand(2, *out.shape[-2:])
    build_loss(model.default_loss)(out, target, target > 0.9).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


# The AVS360 ablations differ from avs360 in the audio path only; they train with planar visual views
# here to keep the suite fast (the spherical CPU convolution costs ~1 s per step even at this size).
TRAIN_KWARGS = {"avs360_visual": {"view": "both_planar"}, "avs360_no_aem": {"view": "both_planar"}}


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_few_training_steps_lower_the_loss(name):
    torch.manual_seed(0)  # tiny BN-free decoders (ViNet's) can start with all-dead ReLUs at some seeds
    model = create_model(name, **TINY_KWARGS[name], **TRAIN_KWARGS.get(name, {})).train()
    inputs = model.example_inputs(batch_size=2)
    h, w = model.input_spec.output_size
    target = torch.zeros(2, h, w)
    target[:, h // 4: h // 2, w // 4: w // 2] = 1.0   # a salient block the model can learn to find
    loss_fn = build_loss(model.default_loss)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(model(**inputs), target, target > 0.5)  # fixations for losses with nss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_the_prior_has_no_parameters():
    assert sum(p.numel() for p in create_model("aem_ecb").parameters()) == 0


@pytest.mark.parametrize("name", ["avs360", "spherical_unet", "vinet_sph", "avinet_sph", "stavis_sph",
                                  "mvva_sph", "aem_ecb"])
def test_compiles_into_one_graph(name):
    """Spherical convolutions and pools, cube padding, projections and the audio maps are all
    traceable: ``torch.compile`` captures each model (the spherical variants; the planar ones are plain
    torch) in one graph, without a break."""
    torch.manual_seed(0)
    model = create_model(name, **TINY_KWARGS[name]).eval()
    inputs = model.example_inputs(batch_size=1)
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(**inputs)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
