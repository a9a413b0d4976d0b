"""What training and evaluation both read: annotation formats (boxes, points, masks) and the fixed held-out splits."""
