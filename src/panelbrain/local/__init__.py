"""Run the SAM application on a laptop: the template's resources on an embedded AWS emulator."""
