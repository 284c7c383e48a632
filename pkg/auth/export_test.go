package auth

// Verifications is how many password verifications s has run (the work guesses cost).
func Verifications(s *Service) int64 { return s.hash.verified.Load() }
