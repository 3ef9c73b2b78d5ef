"""No models: the demo uses Django's own User. (This module lets migrate send post_migrate to the app.)"""
