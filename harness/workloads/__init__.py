"""What a run does: the operations, the scenarios and the nemesis that plan them, the
generators that draw them."""
