"""The pipeline's report: the leaderboard beside the published models as Markdown and one HTML
page (`leaderboard`), and its plots (`plots`)."""
