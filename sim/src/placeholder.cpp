// Replaced by the simulator sources.
namespace copro::sim {
int placeholderSymbol() { return 0; }
}  // namespace copro::sim
