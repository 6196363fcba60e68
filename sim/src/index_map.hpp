#pragma once
/// A small open-addressing hash map from 64-bit keys to int32 values (linear probing, backward-shift
/// deletion): the simulator inserts and erases an entry per in-flight transfer, which std::unordered_map
/// would turn into an allocation each.
#include <cstdint>
#include <vector>

namespace copro::sim::detail {

class IndexMap {
 public:
  IndexMap() { slots_.assign(16, Slot{}); }

  /// The value of `key`, or -1.
  [[nodiscard]] std::int32_t find(std::uint64_t key) const {
    for (std::size_t i = bucket(key);; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.value < 0) return -1;
      if (s.key == key) return s.value;
    }
  }
  /// Inserts `key` (must be absent) with `value` >= 0.
  void insert(std::uint64_t key, std::int32_t value) {
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    place(key, value);
    ++size_;
  }
  void erase(std::uint64_t key) {
    std::size_t i = bucket(key);
    for (;; i = (i + 1) & mask()) {
      if (slots_[i].value < 0) return;
      if (slots_[i].key == key) break;
    }
    // Backward shift: pull later members of the probe run into the hole so lookups never stop early.
    std::size_t hole = i;
    for (std::size_t j = (hole + 1) & mask();; j = (j + 1) & mask()) {
      if (slots_[j].value < 0) break;
      const std::size_t home = bucket(slots_[j].key);
      const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint64_t key = 0;
    std::int32_t value = -1;
  };
  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }
  [[nodiscard]] std::size_t bucket(std::uint64_t key) const {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDULL;
    key ^= key >> 33;
    return static_cast<std::size_t>(key) & mask();
  }
  void place(std::uint64_t key, std::int32_t value) {
    std::size_t i = bucket(key);
    while (slots_[i].value >= 0) i = (i + 1) & mask();
    slots_[i] = Slot{key, value};
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.value >= 0) place(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace copro::sim::detail
