"""LMT and LC-LMT with lipschitz="bound": an upper bound of the certificate's L."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from sk_margin.nets import PowerIterationLipschitz, lipschitz_bound
from sk_margin.nets.losses import LCLMTLoss, LMTLoss


def _networks():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(),
                        nn.Linear(30, 5))  # fmt: skip
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )  # fmt: skip
    return {"mlp": (mlp, (20,)), "cnn": (cnn, (1, 8, 8))}


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("loss_cls", [LMTLoss, LCLMTLoss])
def test_bound_is_the_certificates_constant_at_every_step(name, loss_cls):
    module, shape = _networks()[name]
    loss = loss_cls(eps=0.5, lipschitz="bound")
    estimate = loss_cls(eps=0.5)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    rng = torch.Generator().manual_seed(0)
    for _ in range(15):
        X = torch.rand((16, *shape), generator=rng)
        y = torch.randint(0, 5, (16,), generator=rng)
        opt.zero_grad()
        value = loss(module(X), y, X=X, module=module)
        value.backward()
        exact = lipschitz_bound(module, shape)  # the certificate's float64 bound
        L = loss.lipschitz_.item()
        assert exact * (1 - 1e-6) <= L <= exact * (1 + 1e-6)  # float32 value
        assert estimate.lipschitz_estimate(module, X).item() <= exact * (1 + 1e-6)
        opt.step()


def test_gradient_is_the_power_iteration_gradient():
    module, shape = _networks()["mlp"]
    X = torch.rand(8, *shape)
    grads = {}
    for bound in (False, True):
        torch.manual_seed(1)  # the same starting power iterates
        est = PowerIterationLipschitz(bound=bound)
        for _ in range(20):
            est(module, X)
        module.zero_grad()
        torch.manual_seed(1)
        est2 = PowerIterationLipschitz(bound=bound)
        est2.power_iterates_ = {k: v.clone() for k, v in est.power_iterates_.items()}
        est2(module, X).backward()
        grads[bound] = [p.grad.clone() for p in module.parameters() if p.ndim == 2]
    # d(prod_l s_l)/dW_k = (prod_{l != k} s_l) u_k v_k^T: the same direction,
    # scaled by the other layers' values, bounds rather than estimates.
    for g_est, g_bound in zip(grads[False], grads[True], strict=True):
        cos = (g_est * g_bound).sum() / (g_est.norm() * g_bound.norm())
        assert cos.item() > 1 - 1e-5
        assert g_bound.norm() >= g_est.norm()


def test_lipschitz_option_is_checked_and_can_be_set_later():
    with pytest.raises(Exception, match="lipschitz"):
        LMTLoss(lipschitz="exact")
    module, shape = _networks()["mlp"]
    loss = LMTLoss(eps=0.5)
    X = torch.rand(4, *shape)
    below = loss.lipschitz_estimate(module, X).item()
    loss.lipschitz = "bound"
    above = loss.lipschitz_estimate(module, X).item()
    assert_allclose(above, lipschitz_bound(module, shape), rtol=1e-6)
    assert below < above
    assert np.isfinite(above)


def test_certified_margin_loss_divides_by_the_bound():
    from sk_margin.nets.losses import CertifiedMarginLoss

    module, shape = _networks()["mlp"]
    X, y = torch.rand(8, *shape), torch.randint(0, 5, (8,))
    body = module[:-1]
    loss = CertifiedMarginLoss(lipschitz="bound")
    value = loss(module(X), y, X=X, module=module)
    assert torch.isfinite(value)
    L = loss._hidden_lipschitz(module, body, X)
    assert_allclose(float(L.detach()), lipschitz_bound(body, shape), rtol=1e-6)
    estimate = CertifiedMarginLoss(lipschitz="estimate")._hidden_lipschitz(
        module, body, X
    )
    assert float(estimate.detach()) <= float(L.detach()) * (1 + 1e-6)
