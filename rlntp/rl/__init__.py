"""RL after next-token prediction: one shared rollout and rewards, and three algorithms.

- :mod:`rlntp.rl.rollout`: sample n responses per prompt with KV caching, score them.
- :mod:`rlntp.rl.rewards`: the end-to-end and the chain-of-thought reward.
- :mod:`rlntp.rl.grpo`, :mod:`rlntp.rl.reinforce`, :mod:`rlntp.rl.star`: one update each.
"""
