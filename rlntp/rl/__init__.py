"""RL after next-token prediction: one rollout, one loop, three algorithms; rewards come from
the task (:meth:`rlntp.task.Task.reward`).

- :mod:`rlntp.rl.rollout`: sample n responses per prompt with KV caching, score them.
- :mod:`rlntp.rl.train`: the resumable RL loop and the table of methods.
- :mod:`rlntp.rl.grpo`, :mod:`rlntp.rl.reinforce`, :mod:`rlntp.rl.star`: one update each.
"""
