"""Hand-computed values for GRPO's maths (trainers/losses.py)."""

import math

import pytest
import torch

from trainers.losses import aggregate, clipped_surrogate, group_advantages, group_std, k3_kl


def test_advantage_one_success_in_four():
    # mean 0.25; sample std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4)
    assert adv.tolist() == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001])


def test_advantage_groups_are_independent():
    adv = group_advantages(torch.tensor([1.0, 0.0, 5.0, 5.0]), 2)
    # group 1: mean .5, std sqrt(.5); group 2: identical rewards -> 0
    s = math.sqrt(0.5)
    assert adv.tolist() == pytest.approx([0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0.0, 0.0])


def test_unjudged_reward_is_left_out_and_gets_zero_advantage():
    adv = group_advantages(torch.tensor([1.0, float("nan"), 0.0]), 3)
    s = math.sqrt(0.5)  # judged [1, 0]: mean .5, sample std sqrt(.5)
    assert adv.tolist() == pytest.approx([0.5 / (s + 1e-4), 0.0, -0.5 / (s + 1e-4)])


def test_group_std_flags_zero_std_groups():
    assert group_std(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2).tolist() == pytest.approx([0.0, math.sqrt(0.5)])


def test_k3_kl_hand_values():
    logp = torch.tensor([math.log(0.5), math.log(0.2)])
    ref = torch.tensor([math.log(0.25), math.log(0.2)])
    # d = log(.25/.5) = -ln 2: e^d - d - 1 = 0.5 + ln 2 - 1
    assert k3_kl(logp, ref).tolist() == pytest.approx([0.5 + math.log(2) - 1, 0.0])


def test_clip_positive_advantage_caps_ratio_above():
    old = torch.zeros(1, 1)
    logp = torch.full((1, 1), math.log(1.5), requires_grad=True)
    loss, low, high = clipped_surrogate(logp, old, torch.tensor([2.0]), 0.2)
    assert loss.item() == pytest.approx(-1.2 * 2.0)  # min(1.5*2, 1.2*2)
    assert high.item() and not low.item()
    loss.sum().backward()
    assert logp.grad.item() == 0.0  # clipped: no gradient


def test_clip_negative_advantage_caps_ratio_below():
    loss, low, high = clipped_surrogate(torch.full((1, 1), math.log(0.5)), torch.zeros(1, 1), torch.tensor([-1.0]), 0.2)
    assert loss.item() == pytest.approx(0.8)  # -min(0.5*-1, 0.8*-1)
    assert low.item() and not high.item()


def test_clip_does_not_bind_in_the_improving_direction():
    # ratio 0.5 with a positive advantage: unclipped term is the min, gradient flows
    loss, low, high = clipped_surrogate(torch.full((1, 1), math.log(0.5)), torch.zeros(1, 1), torch.tensor([1.0]), 0.2)
    assert loss.item() == pytest.approx(-0.5)
    assert not low.item() and not high.item()


def test_clip_higher_uses_eps_high():
    loss, _, high = clipped_surrogate(torch.full((1, 1), math.log(1.25)), torch.zeros(1, 1), torch.tensor([1.0]),
                                      0.2, eps_high=0.28)
    assert loss.item() == pytest.approx(-1.25) and not high.item()


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_aggregate_grpo_is_mean_of_sequence_means():
    assert aggregate(PER_TOKEN, MASK, "grpo").item() == pytest.approx((2.0 + 4.0) / 2)


def test_aggregate_dapo_is_token_mean():
    assert aggregate(PER_TOKEN, MASK, "dapo").item() == pytest.approx(10.0 / 4)


def test_aggregate_dr_grpo_divides_by_constant():
    assert aggregate(PER_TOKEN, MASK, "dr_grpo", max_completion_length=5).item() == pytest.approx(10.0 / (2 * 5))


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_micro_batches_add_up_to_the_full_batch(loss_type):
    full = aggregate(PER_TOKEN, MASK, loss_type, max_completion_length=3)
    parts = sum(
        aggregate(PER_TOKEN[i: i + 1], MASK[i: i + 1], loss_type, num_sequences=2, num_tokens=4,
                  max_completion_length=3)
        for i in range(2)
    )
    assert parts.item() == pytest.approx(full.item())
