"""White-box removal attacks: the attacker holds the weights and changes them."""
