"""One router per resource; ``leadqual.api.app`` mounts them all."""
