print("idem")
