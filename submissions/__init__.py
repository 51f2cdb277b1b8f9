"""Leaderboard submissions: fused test-split runs, validated and packaged with a manifest."""
